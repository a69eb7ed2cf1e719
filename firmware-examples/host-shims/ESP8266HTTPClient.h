// Host syntax-check shim: the ESP8266 core's HTTP client (declarations only).
#pragma once

#if !defined(ARDUINO_ARCH_ESP8266)
#error "ESP8266HTTPClient.h is for the ESP8266; the ESP32 uses HTTPClient.h"
#endif

#include <http_client_common.h>
