// esp32-mqtt: an ESP32 that measures one CT sensor and an energy meter's pulse output and
// publishes them to ynni's MQTT broker every 10 s, on emonhub's topics:
//   emon/<NODE>/power1   apparent power in W (from the CT's RMS current)
//   emon/<NODE>/pulse    energy counted since boot, in Wh
// Readings taken while the broker is unreachable wait in a ring buffer and are sent, oldest
// first, as {"time":<unix s>,"power1":…,"pulse":…} on emon/<NODE> once it is back.
//
// Board: any ESP32 (Arduino core 2.x or 3.x). Library: PubSubClient 2.8 (Nick O'Leary).
// Wiring, calibration and the ynni side are in README.md.

#include <WiFi.h>
#include <PubSubClient.h>
#include <time.h>

#ifndef YNNI_USE_TLS
#define YNNI_USE_TLS 0  // 1: connect to ynni's mqtt.tls_listen port and check its certificate
#endif
#if YNNI_USE_TLS
#include <WiFiClientSecure.h>
#endif

// ---------------------------------------------------------------- settings: edit these
const char *WIFI_SSID = "YOUR_WIFI_SSID";
const char *WIFI_PASSWORD = "YOUR_WIFI_PASSWORD";
const char *MQTT_HOST = "192.168.1.10";  // the machine running ynni
const uint16_t MQTT_PORT = YNNI_USE_TLS ? 8883 : 1883;
const char *MQTT_USERNAME = "YOUR_YNNI_USERNAME";  // the ynni account name
// The account's write apikey, or a device key made for NODE on the Account page (a device
// key may publish only under emon/NODE, which is all this sketch does).
const char *MQTT_PASSWORD = "YOUR_WRITE_APIKEY";
const char *NODE = "esp32";
// Buffered readings need the real time; on a LAN without internet, name a local NTP server.
const char *NTP_SERVER = "pool.ntp.org";
#if YNNI_USE_TLS
// Paste <data_dir>/tls/mqtt-cert.pem here (made by `ynni tls selfsigned --name <host>`);
// MQTT_HOST must be one of the names given with --name.
const char *YNNI_CERT = R"PEM(
-----BEGIN CERTIFICATE-----
PASTE_YOUR_MQTT_CERT_PEM_HERE
-----END CERTIFICATE-----
)PEM";
#endif

// ---------------------------------------------------------------- hardware
const uint8_t CT_PIN = 34;     // must be an ADC1 pin: ADC2 cannot be read while WiFi is on
const uint8_t PULSE_PIN = 27;  // GPIO 34-39 have no pull-up, so not one of those
const float MAINS_VOLTS = 240.0;  // no voltage sensor: power assumes this voltage and PF 1
// CT ratio / burden: a 100 A:50 mA CT (2000 turns) with a 33 ohm burden gives 2000/33.
const float CT_AMPS_PER_VOLT = 60.6;
const float ADC_VOLTS_PER_COUNT = 3.3 / 4095.0;  // 12-bit; the ESP32 ADC is only roughly linear
const float PULSES_PER_KWH = 1000.0;              // printed on the meter, e.g. "1000 imp/kWh"
// Longer than a contact bounce, shorter than the gap between pulses at the largest load.
const uint32_t PULSE_MIN_GAP_US = 50000;

// ---------------------------------------------------------------- timing and buffer
const uint32_t READ_INTERVAL_MS = 10000;
const uint32_t SAMPLE_WINDOW_US = 200000;  // 10 cycles at 50 Hz, 12 at 60 Hz: whole cycles
const uint32_t BACKOFF_MIN_MS = 1000;
const uint32_t BACKOFF_MAX_MS = 60000;
const size_t BUFFER_SIZE = 720;       // 2 hours of readings at 12 bytes each
const size_t FLUSH_PER_LOOP = 10;     // keep loop() short so mqtt.loop() keeps the link alive

struct Reading {
  uint32_t takenMs;  // millis() when taken; turned into unix time only when sent
  float power1;
  float pulseWh;
};

#if YNNI_USE_TLS
WiFiClientSecure net;
#else
WiFiClient net;
#endif
PubSubClient mqtt(net);
char clientId[40];

Reading ring[BUFFER_SIZE];
size_t ringHead = 0;  // oldest reading
size_t ringCount = 0;

volatile uint32_t pulseCount = 0;
volatile uint32_t lastPulseUs = 0;

uint32_t lastReadMs = 0;
uint32_t lastAttemptMs = 0;
uint32_t backoffMs = BACKOFF_MIN_MS;

void IRAM_ATTR onPulse() {
  uint32_t now = micros();
  if (now - lastPulseUs >= PULSE_MIN_GAP_US) {
    pulseCount++;  // a 32-bit store is atomic on the ESP32, so loop() may read it directly
    lastPulseUs = now;
  }
}

// RMS of the CT voltage over whole mains cycles. The mean of the samples is the bias
// (mid-rail) voltage, so it is subtracted rather than configured.
float readPowerWatts() {
  uint64_t sum = 0, sumSquares = 0;
  uint32_t n = 0;
  uint32_t start = micros();
  while (micros() - start < SAMPLE_WINDOW_US) {
    uint32_t v = analogRead(CT_PIN);
    sum += v;
    sumSquares += (uint64_t)v * v;
    n++;
  }
  if (n == 0) return 0;
  double mean = (double)sum / n;
  double variance = (double)sumSquares / n - mean * mean;
  double rmsCounts = variance > 0 ? sqrt(variance) : 0;
  return rmsCounts * ADC_VOLTS_PER_COUNT * CT_AMPS_PER_VOLT * MAINS_VOLTS;
}

Reading takeReading() {
  Reading r;
  r.takenMs = millis();
  r.power1 = readPowerWatts();
  r.pulseWh = pulseCount * (1000.0 / PULSES_PER_KWH);
  return r;
}

void bufferPush(const Reading &r) {
  if (ringCount == BUFFER_SIZE) {  // full: the oldest reading makes room
    ringHead = (ringHead + 1) % BUFFER_SIZE;
    ringCount--;
  }
  ring[(ringHead + ringCount) % BUFFER_SIZE] = r;
  ringCount++;
}

bool clockIsSet() {
  return time(nullptr) > 1700000000;  // before NTP answers, the clock starts at 1970
}

bool publishValue(const char *input, float value) {
  char topic[96], payload[24];
  snprintf(topic, sizeof topic, "emon/%s/%s", NODE, input);
  snprintf(payload, sizeof payload, "%.1f", value);
  return mqtt.publish(topic, payload);
}

// Live values carry no time: ynni stamps them on arrival, as emoncms does.
bool publishLive(const Reading &r) {
  return publishValue("power1", r.power1) && publishValue("pulse", r.pulseWh);
}

// A buffered value needs its own time. emoncms's MQTT input (and ynni's) reads a "time"
// key in a JSON payload and files the values at that time instead of the arrival time.
bool publishBuffered(const Reading &r) {
  uint32_t ageS = (millis() - r.takenMs) / 1000;  // unsigned: correct across millis() wrap
  unsigned long t = (unsigned long)time(nullptr) - ageS;
  char topic[64], payload[96];
  snprintf(topic, sizeof topic, "emon/%s", NODE);
  snprintf(payload, sizeof payload, "{\"time\":%lu,\"power1\":%.1f,\"pulse\":%.1f}", t,
           r.power1, r.pulseWh);
  return mqtt.publish(topic, payload);
}

// Oldest first, so values reach ynni in time order: accumulating processes (Wh/kWh
// accumulators, kWh/d) ignore a value older than the newest they have seen.
void flushSome() {
  for (size_t i = 0; i < FLUSH_PER_LOOP && ringCount > 0; i++) {
    if (!publishBuffered(ring[ringHead])) return;
    ringHead = (ringHead + 1) % BUFFER_SIZE;
    ringCount--;
    if (ringCount == 0) Serial.println("buffer sent");
  }
}

// Non-blocking apart from the connect itself: a broker that is down costs one attempt per
// backoff period, doubling to BACKOFF_MAX_MS, with jitter so that many devices restarting
// together do not retry in step.
void maintainConnection() {
  if (mqtt.connected() || WiFi.status() != WL_CONNECTED) return;  // the core redials WiFi
  uint32_t now = millis();
  if (now - lastAttemptMs < backoffMs) return;
  lastAttemptMs = now;
  if (mqtt.connect(clientId, MQTT_USERNAME, MQTT_PASSWORD)) {
    Serial.printf("MQTT connected to %s:%u, %u readings buffered\n", MQTT_HOST, MQTT_PORT,
                  (unsigned)ringCount);
    backoffMs = BACKOFF_MIN_MS;
    return;
  }
  // ynni closes the connection without a CONNACK on a wrong username or key, so a bad key
  // shows here as a timeout or lost connection, not as "bad credentials".
  Serial.printf("MQTT connect failed (state %d); next try in %lu ms\n", mqtt.state(),
                (unsigned long)backoffMs);
  uint32_t next = backoffMs * 2 + random(backoffMs / 4 + 1);
  backoffMs = next < BACKOFF_MAX_MS ? next : BACKOFF_MAX_MS;
}

void setup() {
  Serial.begin(115200);
  pinMode(PULSE_PIN, INPUT_PULLUP);
  attachInterrupt(digitalPinToInterrupt(PULSE_PIN), onPulse, FALLING);

  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, NTP_SERVER);  // UTC; SNTP keeps retrying in the background

  uint8_t mac[6];
  WiFi.macAddress(mac);
  snprintf(clientId, sizeof clientId, "%s-%02x%02x%02x", NODE, mac[3], mac[4], mac[5]);

#if YNNI_USE_TLS
  net.setCACert(YNNI_CERT);
#endif
  mqtt.setServer(MQTT_HOST, MQTT_PORT);
  lastReadMs = millis();
}

void loop() {
  maintainConnection();
  if (mqtt.connected()) mqtt.loop();

  if (millis() - lastReadMs >= READ_INTERVAL_MS) {
    lastReadMs = millis();
    Reading r = takeReading();
    Serial.printf("power1 %.1f W, pulse %.1f Wh\n", r.power1, r.pulseWh);
    // With readings waiting, a new one queues behind them to keep the time order, unless
    // there is no clock yet to send the waiting ones with (then live values go first).
    bool sent = false;
    if (mqtt.connected() && (ringCount == 0 || !clockIsSet())) sent = publishLive(r);
    if (!sent) bufferPush(r);
  }

  if (ringCount > 0 && mqtt.connected() && clockIsSet()) flushSome();
}
