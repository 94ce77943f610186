#pragma once
// Deliberate crashes for fault-injection tests. Every durable write ppnet makes — an SQLite
// commit, a file renamed into place — calls durable_write() right after it has happened, the
// moment a `kill -9` or power cut leaves the most half-finished work behind.
//
// PPNET_CRASH_AFTER=N in the environment makes the process kill itself with SIGKILL after its
// N-th durable write (N ≥ 1; anything else leaves it off). PPNET_CRASH_LOG=FILE appends one line
// per durable write to FILE ("N commit PATH" or "N rename PATH"), so a test can count and name
// the points of a command. Without either variable a call costs one atomic increment.

#include <string>

namespace ppnet {

/// Records a durable write of `kind` ("commit", "rename") to `path`; may not return (see above).
void durable_write(const char* kind, const std::string& path);

}  // namespace ppnet
