// Host syntax-check shim: HTTPClient as in the ESP8266 and ESP32 cores (declarations only).
// Sketches include ESP8266HTTPClient.h (ESP8266) or HTTPClient.h (ESP32).
#pragma once

#include <Arduino.h>
#include <WiFiClient.h>

#define HTTPC_ERROR_CONNECTION_REFUSED (-1)
#define HTTPC_ERROR_SEND_HEADER_FAILED (-2)
#define HTTPC_ERROR_SEND_PAYLOAD_FAILED (-3)
#define HTTPC_ERROR_NOT_CONNECTED (-4)
#define HTTPC_ERROR_CONNECTION_LOST (-5)
#define HTTPC_ERROR_READ_TIMEOUT (-11)

enum t_http_codes { HTTP_CODE_OK = 200, HTTP_CODE_UNAUTHORIZED = 401, HTTP_CODE_SERVICE_UNAVAILABLE = 503 };

class HTTPClient {
 public:
  HTTPClient();
  ~HTTPClient();
  bool begin(WiFiClient &client, const String &url);
  void end();
  void setTimeout(uint16_t timeout_ms);
  void setReuse(bool reuse);
  void addHeader(const String &name, const String &value, bool first = false, bool replace = true);
  int GET();
  int POST(const String &payload);
  int POST(const uint8_t *payload, size_t size);
  int getSize();
  const String &getString();
  static String errorToString(int error);
};
