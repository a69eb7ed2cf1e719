// Host syntax-check shim for the Arduino core on the ESP32 and ESP8266.
//
// Declarations only, no behaviour: check.sh compiles the sketches with
// `g++ -fsyntax-only` against these files to catch typos, wrong types and wrong
// calls. Nothing here is linked or run. Signatures follow the ESP32 core (2.x/3.x) and
// the ESP8266 core (3.x); what exists on only one board is declared only for that board
// (check.sh defines ARDUINO_ARCH_ESP32 or ARDUINO_ARCH_ESP8266, as the real cores do).
#pragma once

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(ARDUINO_ARCH_ESP32) == defined(ARDUINO_ARCH_ESP8266)
#error "define exactly one of ARDUINO_ARCH_ESP32 and ARDUINO_ARCH_ESP8266"
#endif

typedef bool boolean;
typedef uint8_t byte;

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x01
#define OUTPUT 0x03
#define INPUT_PULLUP 0x05
#define RISING 0x01
#define FALLING 0x02
#define CHANGE 0x03

// Places interrupt handlers in RAM on the real boards; nothing to do on the host.
#define IRAM_ATTR
#define digitalPinToInterrupt(p) (p)

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void yield();
long random(long howbig);
long random(long howsmall, long howbig);
void randomSeed(unsigned long seed);

void pinMode(uint8_t pin, uint8_t mode);
int digitalRead(uint8_t pin);
void digitalWrite(uint8_t pin, uint8_t val);
void attachInterrupt(uint8_t pin, void (*handler)(void), int mode);
void detachInterrupt(uint8_t pin);

#if defined(ARDUINO_ARCH_ESP32)
uint16_t analogRead(uint8_t pin);
void analogReadResolution(uint8_t bits);
void configTime(long gmtOffset_sec, int daylightOffset_sec, const char *server1,
                const char *server2 = nullptr, const char *server3 = nullptr);
#else
static const uint8_t A0 = 17;
int analogRead(uint8_t pin);
void configTime(int timezone_sec, int daylightOffset_sec, const char *server1,
                const char *server2 = nullptr, const char *server3 = nullptr);
#endif

#include "WString.h"

class Print {
 public:
  size_t print(const char *s);
  size_t print(const String &s);
  size_t print(char c);
  size_t print(int n, int base = 10);
  size_t print(unsigned int n, int base = 10);
  size_t print(long n, int base = 10);
  size_t print(unsigned long n, int base = 10);
  size_t print(double n, int digits = 2);
  size_t println(const char *s);
  size_t println(const String &s);
  size_t println(char c);
  size_t println(int n, int base = 10);
  size_t println(unsigned int n, int base = 10);
  size_t println(long n, int base = 10);
  size_t println(unsigned long n, int base = 10);
  size_t println(double n, int digits = 2);
  size_t println();
  size_t printf(const char *format, ...) __attribute__((format(printf, 2, 3)));
};

class HardwareSerial : public Print {
 public:
  void begin(unsigned long baud);
  void end();
  int available();
  int read();
};

extern HardwareSerial Serial;

class IPAddress {
 public:
  IPAddress();
  IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d);
  String toString() const;
};

class EspClass {
 public:
  void restart();
  uint32_t getFreeHeap();
#if defined(ARDUINO_ARCH_ESP8266)
  uint32_t getChipId();
#else
  uint64_t getEfuseMac();
#endif
};

extern EspClass ESP;
