// Host syntax-check shim: the ESP32 core's WiFi library (declarations only).
#pragma once

#if !defined(ARDUINO_ARCH_ESP32)
#error "WiFi.h is the ESP32 library; the ESP8266 uses ESP8266WiFi.h"
#endif

#include <wifi_common.h>
