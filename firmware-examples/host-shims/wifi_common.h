// Host syntax-check shim: the WiFi object shared by the ESP32 and ESP8266 cores
// (declarations only). Sketches include WiFi.h (ESP32) or ESP8266WiFi.h (ESP8266).
#pragma once

#include <Arduino.h>
#include <WiFiClient.h>

typedef enum {
  WL_IDLE_STATUS = 0,
  WL_NO_SSID_AVAIL = 1,
  WL_SCAN_COMPLETED = 2,
  WL_CONNECTED = 3,
  WL_CONNECT_FAILED = 4,
  WL_CONNECTION_LOST = 5,
  WL_DISCONNECTED = 6
} wl_status_t;

typedef enum { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } wifi_mode_t;

class WiFiClass {
 public:
  bool mode(wifi_mode_t mode);
  wl_status_t begin(const char *ssid, const char *passphrase = nullptr);
  wl_status_t status();
  bool setAutoReconnect(bool autoReconnect);
  bool disconnect(bool wifioff = false);
  IPAddress localIP();
  int8_t RSSI();
  uint8_t *macAddress(uint8_t *mac);
  String macAddress();
};

extern WiFiClass WiFi;
