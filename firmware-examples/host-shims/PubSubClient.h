// Host syntax-check shim: Nick O'Leary's PubSubClient 2.8 (declarations only).
#pragma once

#include <Arduino.h>
#include <Client.h>

#define MQTT_CONNECTION_TIMEOUT -4
#define MQTT_CONNECTION_LOST -3
#define MQTT_CONNECT_FAILED -2
#define MQTT_DISCONNECTED -1
#define MQTT_CONNECTED 0
#define MQTT_CONNECT_BAD_PROTOCOL 1
#define MQTT_CONNECT_BAD_CLIENT_ID 2
#define MQTT_CONNECT_UNAVAILABLE 3
#define MQTT_CONNECT_BAD_CREDENTIALS 4
#define MQTT_CONNECT_UNAUTHORIZED 5

class PubSubClient {
 public:
  PubSubClient();
  explicit PubSubClient(Client &client);
  PubSubClient &setServer(const char *domain, uint16_t port);
  PubSubClient &setClient(Client &client);
  PubSubClient &setKeepAlive(uint16_t keepAlive);
  PubSubClient &setSocketTimeout(uint16_t timeout);
  boolean setBufferSize(uint16_t size);
  uint16_t getBufferSize();
  boolean connect(const char *id);
  boolean connect(const char *id, const char *user, const char *pass);
  void disconnect();
  boolean publish(const char *topic, const char *payload);
  boolean publish(const char *topic, const char *payload, boolean retained);
  boolean loop();
  boolean connected();
  int state();
};
