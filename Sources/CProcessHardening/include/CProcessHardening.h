#ifndef C_PROCESS_HARDENING_H
#define C_PROCESS_HARDENING_H

/// Marks this process not dumpable: no core file, no core piped to a
/// handler, no ptrace or /proc/PID/mem by other processes of the same user
/// (Linux prctl PR_SET_DUMPABLE 0; prctl is variadic, so Swift cannot call
/// it). Returns 0 on success, -1 on failure or on systems without prctl.
int kms_set_not_dumpable(void);

/// Until `kms_keep_on_fault`, a SIGBUS (a memory-mapped input that another
/// process shortened while it was read, or `kill -BUS`) removes the file at
/// `path`, says so on standard error and exits with status 1, instead of
/// leaving a partial output behind. A synchronous fault cannot be handled by
/// a dispatch source, hence a C handler that uses async-signal-safe calls
/// only. Returns 0, or -1 if the path is too long or the handler not set.
int kms_remove_on_fault(const char *path);

/// Restores SIGBUS's default action and forgets the path.
void kms_keep_on_fault(void);

#endif
