#include "cores.h"

#if defined(__APPLE__)
#include <sys/sysctl.h>

int lorasmith_physical_cores(void) {
  int cores = 0;
  size_t size = sizeof cores;
  if (sysctlbyname("hw.physicalcpu", &cores, &size, NULL, 0) != 0 || cores < 1) return 1;
  return cores;
}

#elif defined(_WIN32)
#include <stdlib.h>
#include <windows.h>

int lorasmith_physical_cores(void) {
  DWORD length = 0;
  GetLogicalProcessorInformationEx(RelationProcessorCore, NULL, &length);
  char *buffer = (char *)malloc(length);
  if (buffer == NULL) return 1;
  int cores = 0;
  if (GetLogicalProcessorInformationEx(RelationProcessorCore, (PSYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX)buffer,
                                       &length)) {
    for (DWORD offset = 0; offset < length;) {
      PSYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX item = (PSYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX)(buffer + offset);
      if (item->Relationship == RelationProcessorCore) cores++;
      offset += item->Size;
    }
  }
  free(buffer);
  return cores < 1 ? 1 : cores;
}

#else /* Linux and other POSIX systems with sysfs */
#include <stdio.h>
#include <unistd.h>

/* A CPU counts as a core when it is the first of its SMT siblings ("0-1", "0,8" list it first). */
static int is_first_sibling(long cpu) {
  char path[128];
  snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", cpu);
  FILE *file = fopen(path, "r");
  if (file == NULL) return -1;
  long first = -1;
  int read = fscanf(file, "%ld", &first);
  fclose(file);
  if (read != 1) return -1;
  return first == cpu;
}

int lorasmith_physical_cores(void) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  long configured = sysconf(_SC_NPROCESSORS_CONF);
  if (online < 1) return 1;
  int cores = 0;
  for (long cpu = 0; cpu < configured; cpu++) {
    int first = is_first_sibling(cpu);
    if (first < 0) continue; /* offline or no topology: skip */
    cores += first;
  }
  if (cores < 1 || cores > online) return (int)online;
  return cores;
}
#endif
