// esp8266-http: an ESP8266 that measures one CT sensor and an energy meter's pulse output and
// posts them to ynni over HTTP every 10 s with emoncms's input API:
//   GET /input/post?node=<NODE>&fulljson={"power1":…,"pulse":…}&time=<unix s>&apikey=<key>
// power1 is apparent power in W, pulse the energy counted since boot in Wh. Readings taken
// while ynni is unreachable wait in a ring buffer and are sent, oldest first, with
//   POST /input/bulk   data=[[t,"<NODE>",{"power1":…,"pulse":…}],…]&sentat=<t now>
// when it answers again.
//
// Board: any ESP8266 (NodeMCU, Wemos D1 mini…), Arduino core 3.x. No extra libraries.
// Wiring, calibration and the ynni side are in README.md.

#include <ESP8266WiFi.h>
#include <ESP8266HTTPClient.h>
#include <time.h>

// ---------------------------------------------------------------- settings: edit these
const char *WIFI_SSID = "YOUR_WIFI_SSID";
const char *WIFI_PASSWORD = "YOUR_WIFI_PASSWORD";
const char *YNNI_URL = "http://192.168.1.10:8080";  // the machine running ynni, no trailing /
// The account's write apikey (KEY_PARAM "apikey"), or a device key made for NODE on the
// Account page (KEY_PARAM "devicekey"; it may post only NODE).
const char *KEY_PARAM = "apikey";
const char *KEY = "YOUR_WRITE_APIKEY";
const char *NODE = "esp8266";
// Only used to put time= on live posts; buffered posts need no clock (see postBuffered).
const char *NTP_SERVER = "pool.ntp.org";

// ---------------------------------------------------------------- hardware
// A0 is the ESP8266's only ADC: 0-1 V on a bare module, 0-3.2 V on NodeMCU and D1 mini
// boards, which have a divider in front of it.
const uint8_t CT_PIN = A0;
const uint8_t PULSE_PIN = 14;     // D5 on NodeMCU / D1 mini
const float MAINS_VOLTS = 240.0;  // no voltage sensor: power assumes this voltage and PF 1
// CT ratio / burden: a 100 A:50 mA CT (2000 turns) with a 33 ohm burden gives 2000/33.
const float CT_AMPS_PER_VOLT = 60.6;
const float ADC_VOLTS_PER_COUNT = 3.2 / 1023.0;
const float PULSES_PER_KWH = 1000.0;  // printed on the meter, e.g. "1000 imp/kWh"
// Longer than a contact bounce, shorter than the gap between pulses at the largest load.
const uint32_t PULSE_MIN_GAP_US = 50000;

// ---------------------------------------------------------------- timing and buffer
const uint32_t READ_INTERVAL_MS = 10000;
const uint32_t SAMPLE_WINDOW_US = 200000;  // 10 cycles at 50 Hz, 12 at 60 Hz: whole cycles
const uint16_t HTTP_TIMEOUT_MS = 5000;     // requests block loop(); keep them short
const uint32_t BACKOFF_MIN_MS = 2000;
const uint32_t BACKOFF_MAX_MS = 120000;
const size_t BUFFER_SIZE = 360;  // 1 hour of readings at 12 bytes each
const size_t BULK_ROWS = 20;     // rows per input/bulk request, to keep each request small

struct Reading {
  uint32_t takenMs;  // millis() when taken
  float power1;
  float pulseWh;
};

Reading ring[BUFFER_SIZE];
size_t ringHead = 0;  // oldest reading
size_t ringCount = 0;

volatile uint32_t pulseCount = 0;
volatile uint32_t lastPulseUs = 0;

uint32_t lastReadMs = 0;
bool failing = false;
uint32_t lastFailMs = 0;
uint32_t backoffMs = BACKOFF_MIN_MS;

void IRAM_ATTR onPulse() {
  uint32_t now = micros();
  if (now - lastPulseUs >= PULSE_MIN_GAP_US) {
    pulseCount++;  // a 32-bit store is atomic here, so loop() may read it directly
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
    if (++n % 100 == 0) yield();  // reading A0 without pause starves the WiFi stack
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

String urlEncode(const String &s) {
  const char *hex = "0123456789ABCDEF";
  String out;
  out.reserve(s.length() * 3);
  for (unsigned int i = 0; i < s.length(); i++) {
    char c = s[i];
    if (isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[(c >> 4) & 0x0F];
      out += hex[c & 0x0F];
    }
  }
  return out;
}

String valuesJson(const Reading &r) {
  char buf[64];
  snprintf(buf, sizeof buf, "{\"power1\":%.1f,\"pulse\":%.1f}", r.power1, r.pulseWh);
  return String(buf);
}

// True only when ynni stored the data. emoncms answers input/post "ok", or
// {"success": true} when fulljson was used; errors come as {"success": false, …} with
// status 200, and a refused key as 401.
bool request(const String &url, const String *formBody) {
  WiFiClient net;
  HTTPClient http;
  if (!http.begin(net, url)) return false;
  http.setTimeout(HTTP_TIMEOUT_MS);
  int code;
  if (formBody) {
    http.addHeader("Content-Type", "application/x-www-form-urlencoded");
    code = http.POST(*formBody);
  } else {
    code = http.GET();
  }
  String reply = code > 0 ? http.getString() : HTTPClient::errorToString(code);
  http.end();
  reply.trim();
  bool ok = code == HTTP_CODE_OK &&
            (reply == "ok" || reply.indexOf("\"success\": true") >= 0 ||
             reply.indexOf("\"success\":true") >= 0);
  if (!ok) {
    Serial.printf("ynni did not take it: HTTP %d %s\n", code, reply.c_str());
    if (code == HTTP_CODE_UNAUTHORIZED) Serial.println("check KEY and KEY_PARAM");
  }
  return ok;
}

String keyQuery() {
  return String(KEY_PARAM) + "=" + KEY;
}

bool postLive(const Reading &r) {
  String url = String(YNNI_URL) + "/input/post?node=" + urlEncode(NODE) +
               "&fulljson=" + urlEncode(valuesJson(r)) + "&" + keyQuery();
  if (time(nullptr) > 1700000000) {  // before NTP answers the clock reads 1970: let ynni stamp it
    url += "&time=";
    url += (unsigned long)time(nullptr);
  }
  return request(url, nullptr);
}

// Row times are seconds on the ESP's own uptime clock and sentat is that clock's "now":
// emoncms's bulk API files each row at server_now - sentat + t, so no NTP is needed here.
bool postBuffered() {
  size_t rows = ringCount < BULK_ROWS ? ringCount : BULK_ROWS;
  uint32_t baseMs = ring[ringHead].takenMs;  // times relative to the oldest row never wrap
  String data = "[";
  for (size_t i = 0; i < rows; i++) {
    const Reading &r = ring[(ringHead + i) % BUFFER_SIZE];
    if (i > 0) data += ",";
    data += "[";
    data += (unsigned long)((r.takenMs - baseMs) / 1000);
    data += ",\"";
    data += NODE;
    data += "\",";
    data += valuesJson(r);
    data += "]";
  }
  data += "]";
  String body = "data=" + urlEncode(data) + "&sentat=" +
                String((unsigned long)((millis() - baseMs) / 1000));
  if (!request(String(YNNI_URL) + "/input/bulk?" + keyQuery(), &body)) return false;
  ringHead = (ringHead + rows) % BUFFER_SIZE;
  ringCount -= rows;
  Serial.printf("sent %u buffered readings, %u left\n", (unsigned)rows, (unsigned)ringCount);
  return true;
}

// After a failure, wait backoffMs (doubling up to BACKOFF_MAX_MS) before the next request.
bool mayPost() {
  if (WiFi.status() != WL_CONNECTED) return false;
  return !failing || millis() - lastFailMs >= backoffMs;
}

void noteResult(bool ok) {
  if (ok) {
    failing = false;
    backoffMs = BACKOFF_MIN_MS;
    return;
  }
  if (failing) backoffMs = backoffMs * 2 < BACKOFF_MAX_MS ? backoffMs * 2 : BACKOFF_MAX_MS;
  failing = true;
  lastFailMs = millis();
  Serial.printf("next try in %lu ms, %u readings buffered\n", (unsigned long)backoffMs,
                (unsigned)ringCount);
}

void setup() {
  Serial.begin(115200);
  pinMode(PULSE_PIN, INPUT_PULLUP);
  attachInterrupt(digitalPinToInterrupt(PULSE_PIN), onPulse, FALLING);

  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, NTP_SERVER);  // UTC; SNTP keeps retrying in the background
  lastReadMs = millis();
}

void loop() {
  if (millis() - lastReadMs >= READ_INTERVAL_MS) {
    lastReadMs = millis();
    Reading r = takeReading();
    Serial.printf("power1 %.1f W, pulse %.1f Wh\n", r.power1, r.pulseWh);
    // With readings waiting, a new one queues behind them so that ynni gets them in time
    // order: accumulating processes ignore a value older than the newest they have seen.
    if (ringCount == 0 && mayPost()) {
      bool ok = postLive(r);
      noteResult(ok);
      if (!ok) bufferPush(r);
    } else {
      bufferPush(r);
    }
  }

  if (ringCount > 0 && mayPost()) noteResult(postBuffered());
}
