// Host syntax-check shim: the ESP8266 core's WiFi library (declarations only).
#pragma once

#if !defined(ARDUINO_ARCH_ESP8266)
#error "ESP8266WiFi.h is for the ESP8266; the ESP32 uses WiFi.h"
#endif

#include <wifi_common.h>
