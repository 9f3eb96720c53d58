#ifndef C_PROCESS_HARDENING_H
#define C_PROCESS_HARDENING_H

/// Marks this process not dumpable: no core file, no core piped to a
/// handler, no ptrace or /proc/PID/mem by other processes of the same user
/// (Linux prctl PR_SET_DUMPABLE 0; prctl is variadic, so Swift cannot call
/// it). Returns 0 on success, -1 on failure or on systems without prctl.
int kms_set_not_dumpable(void);

#endif
