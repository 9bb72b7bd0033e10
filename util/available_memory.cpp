#include "util/available_memory.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "util/size_parse.h"

namespace strata {
namespace {

// A cgroup file holding one number; "max" (v2) or a near-2^63 value (v1) is no limit.
uint64_t ReadLimit(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  uint64_t value = 0;
  try {
    value = std::stoull(text);
  } catch (...) {
    return 0;
  }
  // v1 writes "no limit" as LONG_MAX rounded down to a page.
  return value >= (uint64_t{1} << 62) ? 0 : value;
}

uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  return in >> value ? value : 0;
}

// One "key value" line of memory.stat.
uint64_t ReadStat(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

struct Hierarchy {
  std::string root;  // the mounted hierarchy
  std::string path;  // our cgroup inside it, "/..."
  bool v2 = false;
};

// Our memory cgroup from /proc/self/cgroup: "N:memory:/path" (v1) or "0::/path" (v2).
bool FindHierarchy(const MemorySources& s, Hierarchy* h) {
  std::ifstream in(s.proc + "/self/cgroup");
  std::string line;
  std::string v2_path;
  bool has_v2 = false;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::stringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');) {
      if (c == "memory") {
        *h = {s.cgroup_mount + "/memory", path, false};
        return true;
      }
    }
    if (line.rfind("0::", 0) == 0) {
      has_v2 = true;
      v2_path = path;
    }
  }
  if (!has_v2) return false;
  // v2 is mounted at the root itself, or under "unified" in hybrid setups.
  for (const std::string& root : {s.cgroup_mount, s.cgroup_mount + "/unified"}) {
    if (std::ifstream(root + "/cgroup.controllers")) {
      *h = {root, v2_path, true};
      return true;
    }
  }
  return false;
}

}  // namespace

uint64_t AvailableMemory::bytes() const {
  if (cgroup_limit == 0) return mem_available;
  return mem_available ? std::min(mem_available, cgroup_free) : cgroup_free;
}

std::string AvailableMemory::Describe() const {
  if (cgroup_limit && (mem_available == 0 || cgroup_free < mem_available)) {
    return "the memory cgroup limit " + FormatBytes(cgroup_limit) + " (" +
           FormatBytes(cgroup_free) + " free)";
  }
  return "MemAvailable " + FormatBytes(mem_available);
}

AvailableMemory ReadAvailableMemory(const MemorySources& s) {
  AvailableMemory m;
  {
    std::ifstream in(s.proc + "/meminfo");
    std::string key, unit;
    uint64_t kib = 0;
    while (in >> key >> kib >> unit) {
      if (key == "MemAvailable:") {
        m.mem_available = kib * 1024;
        break;
      }
    }
  }
  Hierarchy h;
  if (!FindHierarchy(s, &h)) return m;
  // Walk from our cgroup up to the hierarchy's root: any ancestor's limit binds too.
  // Inside a container the path may name cgroups the mount does not show; those
  // levels are simply absent and the walk goes on upward.
  std::string path = h.path == "/" ? "" : h.path;
  uint64_t best_free = std::numeric_limits<uint64_t>::max();
  while (true) {
    const std::string dir = h.root + path;
    const uint64_t limit =
        ReadLimit(dir + (h.v2 ? "/memory.max" : "/memory.limit_in_bytes"));
    if (limit) {
      // Page cache counts against the limit but is given back under pressure.
      const uint64_t usage = ReadNumber(dir + (h.v2 ? "/memory.current" : "/memory.usage_in_bytes"));
      const uint64_t cache = ReadStat(dir + "/memory.stat", h.v2 ? "file" : "total_cache");
      const uint64_t held = usage > cache ? usage - cache : 0;
      const uint64_t free = limit > held ? limit - held : 0;
      if (free < best_free) {
        best_free = free;
        m.cgroup_limit = limit;
        m.cgroup_free = free;
        m.cgroup = dir;
      }
    }
    if (path.empty()) break;
    path.erase(path.rfind('/'));
  }
  return m;
}

}  // namespace strata
