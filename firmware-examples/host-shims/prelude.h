// Included first by check.sh (g++ -include), as the Arduino IDE includes Arduino.h at the
// top of every sketch. Declarations only; see Arduino.h.
#pragma once

#include <Arduino.h>
