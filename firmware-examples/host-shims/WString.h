// Host syntax-check shim: Arduino's String class (declarations only; see Arduino.h).
#pragma once

#include <stddef.h>

class String {
 public:
  String(const char *cstr = "");
  String(const String &other);
  explicit String(char c);
  explicit String(int value, unsigned char base = 10);
  explicit String(unsigned int value, unsigned char base = 10);
  explicit String(long value, unsigned char base = 10);
  explicit String(unsigned long value, unsigned char base = 10);
  explicit String(float value, unsigned char decimalPlaces = 2);
  explicit String(double value, unsigned char decimalPlaces = 2);
  ~String();

  String &operator=(const String &rhs);
  String &operator=(const char *cstr);

  String &operator+=(const String &rhs);
  String &operator+=(const char *cstr);
  String &operator+=(char c);
  String &operator+=(int n);
  String &operator+=(unsigned int n);
  String &operator+=(long n);
  String &operator+=(unsigned long n);

  bool concat(const String &s);
  bool concat(const char *cstr);
  bool concat(char c);

  bool operator==(const String &rhs) const;
  bool operator==(const char *cstr) const;
  bool operator!=(const String &rhs) const;
  bool operator!=(const char *cstr) const;

  char operator[](unsigned int index) const;
  char &operator[](unsigned int index);
  char charAt(unsigned int index) const;

  unsigned int length() const;
  bool reserve(unsigned int size);
  const char *c_str() const;
  void trim();
  bool startsWith(const String &prefix) const;
  bool endsWith(const String &suffix) const;
  int indexOf(char ch) const;
  int indexOf(const String &str) const;
  int indexOf(const char *str) const;
  String substring(unsigned int beginIndex) const;
  String substring(unsigned int beginIndex, unsigned int endIndex) const;
  long toInt() const;
  float toFloat() const;
};

String operator+(const String &lhs, const String &rhs);
String operator+(const String &lhs, const char *rhs);
String operator+(const char *lhs, const String &rhs);
String operator+(const String &lhs, char rhs);
