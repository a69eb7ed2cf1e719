// Host syntax-check shim: the ESP32 core's TLS client (declarations only).
#pragma once

#if !defined(ARDUINO_ARCH_ESP32)
#error "this shim declares the ESP32 WiFiClientSecure (the ESP8266 one differs)"
#endif

#include <WiFiClient.h>

class WiFiClientSecure : public WiFiClient {
 public:
  WiFiClientSecure();
  void setCACert(const char *rootCA);
  void setInsecure();
};
