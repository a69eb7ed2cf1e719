// Host syntax-check shim: the ESP32 core's HTTP client (declarations only).
#pragma once

#if !defined(ARDUINO_ARCH_ESP32)
#error "HTTPClient.h is the ESP32 library; the ESP8266 uses ESP8266HTTPClient.h"
#endif

#include <http_client_common.h>
