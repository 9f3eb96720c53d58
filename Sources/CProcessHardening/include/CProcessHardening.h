#ifndef C_PROCESS_HARDENING_H
#define C_PROCESS_HARDENING_H

/// Marks this process not dumpable: no core file, no core piped to a
/// handler, no ptrace or /proc/PID/mem by other processes of the same user
/// (Linux prctl PR_SET_DUMPABLE 0; prctl is variadic, so Swift cannot call
/// it). Returns 0 on success, -1 on failure or on systems without prctl.
int kms_set_not_dumpable(void);

/// Until `kms_keep_on_fault`, a SIGBUS (a memory-mapped input that another
/// process shortened while it was read) removes the file at `path` (a file
/// verb's temporary output; "" removes nothing), says so on standard error and
/// exits with status 1, instead of a crash that leaves a partial output. A
/// synchronous fault cannot wait for a dispatch source (which the other
/// signals use), hence a C handler with async-signal-safe calls only. Call it
/// before the work that could fault starts. Returns 0, or -1 if the path is
/// too long or the handler could not be set.
int kms_remove_on_fault(const char *path);

/// Restores SIGBUS's previous action and forgets the path.
void kms_keep_on_fault(void);

/// 1 when `signal_number` is ignored (SIG_IGN) in this process, as `nohup`
/// or a non-interactive shell's background job starts it; 0 otherwise. A
/// signal ignored on entry must stay ignored (POSIX: "signals ignored on
/// entry … shall not be caught"), so the file verbs do not handle it.
int kms_signal_ignored(int signal_number);

/// Ends the process by `signal_number`'s default action (restored first, and
/// unblocked in the calling thread), as if the signal had not been caught: a
/// shell sees a child killed by the signal (and stops a script at Ctrl-C)
/// where an exit with 128 + N reads as the command's own status. Returns
/// only if the signal's default action does not end the process.
void kms_end_by_signal(int signal_number);

/// Turns the echo of the terminal at `fd` off, after installing handlers
/// for SIGINT, SIGTERM, SIGHUP and SIGQUIT that put the terminal back as it
/// was, end the line and let the signal kill the process (a shell left
/// without echo types blind, and a shell's loop stops only at a child
/// killed by SIGINT), and with the Ctrl-Z key off and SIGTSTP ignored while
/// the input is hidden (a stopped job's terminal is the shell's until `fg`,
/// which would show the rest of the secret). A signal ignored on entry stays
/// ignored. C handlers, with async-signal-safe calls only, because a
/// dispatch source is armed asynchronously and a signal that comes first is
/// lost. The terminal is changed only while this process is in its
/// foreground. Returns 0; -2 if this process is not in the terminal's
/// foreground; -1 if `fd` is not a terminal, its settings cannot be changed,
/// or input is hidden already.
int kms_hide_input(int fd);

/// Puts the terminal back as `kms_hide_input` found it, discarding input
/// not yet read (the rest of a pasted block, which the shell would show and
/// run), and restores the signals' previous actions; nothing when input is
/// not hidden.
void kms_show_input(void);

/// After a line was read with input hidden: reads and drops, with the echo
/// still off, whatever else arrives at `fd` until it has been quiet for
/// `tenths` tenths of a second, and returns how many of those bytes were
/// not line ends (more than 0: more than one line was pasted), or -1.
int kms_more_input(int fd, int tenths);

/// Flushes C's buffered standard output and says whether all of it was
/// written: 0, or the errno of the failure (EIO when the stream's error flag
/// is set without one). Swift's `print` writes through that buffer and never
/// reports a failed write; Swift 6 cannot name `stdout`, a mutable global.
int kms_finish_stdout(void);

/// Puts a placeholder on each of descriptors 0, 1 and 2 that the process
/// started without (`kms … >&-`): /dev/null opened the wrong way round, so
/// that a read of standard input or a write of standard output or error
/// fails (EBADF) instead of going to whatever file the process opens next
/// and gets that number (a key file, a decrypted output). Call it first.
void kms_guard_standard_descriptors(void);

#endif
