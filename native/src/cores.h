/* Physical core count (not hardware threads): BLAS gains nothing from SMT siblings and loses to contention. */
#ifndef LORASMITH_CORES_H
#define LORASMITH_CORES_H

/* Number of physical cores of this machine, at least 1. */
int lorasmith_physical_cores(void);

#endif
