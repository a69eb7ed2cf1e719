// Host syntax-check shim: a TCP client (declarations only).
#pragma once

#include <Client.h>

class WiFiClient : public Client {
 public:
  WiFiClient();
  int connect(const char *host, uint16_t port) override;
  size_t write(const uint8_t *buf, size_t size) override;
  int available() override;
  int read() override;
  void stop() override;
  uint8_t connected() override;
  void setTimeout(unsigned long timeout_ms);
};
