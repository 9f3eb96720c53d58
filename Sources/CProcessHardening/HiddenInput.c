#include "CProcessHardening.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

// Set by kms_hide_input before the echo goes off; read by the handler.
static struct termios kms_terminal_saved;
static volatile sig_atomic_t kms_terminal_fd = -1;
static const int kms_terminal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
#define KMS_TERMINAL_SIGNAL_COUNT (sizeof kms_terminal_signals / sizeof kms_terminal_signals[0])
static struct sigaction kms_terminal_previous[KMS_TERMINAL_SIGNAL_COUNT];

/// Whether this process group is the terminal's foreground one: settings changed from the background
/// would be the shell's (a review: libdispatch's threads block SIGTTOU, so nothing stops the change).
static int kms_terminal_in_foreground(int fd) {
    pid_t group = tcgetpgrp(fd);
    return group >= 0 && group == getpgrp();
}

static void kms_terminal_handler(int signal_number) {
    // Async-signal-safe calls only. The terminal goes back as it was, then the signal takes its default
    // action: the process dies of it, so a shell's loop stops at a Ctrl-C as at any other command. The
    // handler never returns, and every thread that runs it restores the same settings.
    int fd = kms_terminal_fd;
    if (fd >= 0 && kms_terminal_in_foreground(fd)) tcsetattr(fd, TCSAFLUSH, &kms_terminal_saved);
    ssize_t ignored = write(STDERR_FILENO, "\n", 1);
    (void)ignored;
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal_number, &fallback, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal_number);
    raise(signal_number);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    _exit(128 + signal_number);
}

static int kms_terminal_set(int fd, int when, const struct termios *settings) {
    int result;
    do {
        result = tcsetattr(fd, when, settings);
    } while (result != 0 && errno == EINTR);
    return result;
}

int kms_hide_input(int fd) {
    if (kms_terminal_fd >= 0) return -1;
    if (!kms_terminal_in_foreground(fd)) return -2;
    if (tcgetattr(fd, &kms_terminal_saved) != 0) return -1;
    struct termios quiet = kms_terminal_saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    // The Ctrl-Z key is off while the input is hidden: the terminal discards the line typed so far at
    // it, even with SIGTSTP ignored, so a secret would have been encrypted cut short (a review).
    quiet.c_cc[VSUSP] = _POSIX_VDISABLE;
    kms_terminal_fd = fd;
    // The handlers are in place before the echo goes off, so no signal finds the terminal silent
    // without them (a dispatch source is armed asynchronously). A signal ignored on entry (`trap ''
    // INT`) stays ignored. SIGTSTP is ignored while the input is hidden (its key is off, above; a
    // `kill -TSTP` too): a stopped job's terminal settings are the shell's until `fg`, which would show
    // the rest of the secret (a review), and hiding it again from a handler raced the shell (a later
    // review).
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = kms_terminal_handler;
    sigfillset(&action.sa_mask);
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    for (size_t i = 0; i < KMS_TERMINAL_SIGNAL_COUNT; i++) {
        sigaction(kms_terminal_signals[i], NULL, &kms_terminal_previous[i]);
        if (kms_terminal_previous[i].sa_handler == SIG_IGN) continue;
        sigaction(kms_terminal_signals[i], kms_terminal_signals[i] == SIGTSTP ? &ignore : &action, NULL);
    }
    if (kms_terminal_set(fd, TCSANOW, &quiet) != 0) {
        kms_show_input();
        return -1;
    }
    return 0;
}

void kms_show_input(void) {
    if (kms_terminal_fd < 0) return;
    // Put into the background meanwhile (`kill -STOP`, `bg`), the terminal is the shell's: left alone.
    // Input still pending (the rest of a pasted block) is discarded with the echo coming back, as
    // getpass(3) does: the shell would otherwise show it, run it and keep it in its history (a review).
    if (kms_terminal_in_foreground(kms_terminal_fd)) {
        kms_terminal_set(kms_terminal_fd, TCSAFLUSH, &kms_terminal_saved);
    }
    for (size_t i = 0; i < KMS_TERMINAL_SIGNAL_COUNT; i++) {
        sigaction(kms_terminal_signals[i], &kms_terminal_previous[i], NULL);
    }
    kms_terminal_fd = -1;
}

int kms_more_input(int fd, int tenths) {
    // In canonical mode the terminal reports only whole lines as readable, so a pasted last line with no
    // line end was invisible and then discarded (a review). With ICANON off (the echo stays off, signals
    // stay on) everything pending is readable, and a paste that arrives in pieces shows up within the
    // wait. Line ends alone (a Windows clipboard's CR LF reads as two) do not count.
    struct termios current;
    if (tcgetattr(fd, &current) != 0) return -1;
    struct termios waiting = current;
    waiting.c_lflag &= ~(tcflag_t)ICANON;
    waiting.c_cc[VMIN] = 0;
    waiting.c_cc[VTIME] = (cc_t)tenths;
    if (kms_terminal_set(fd, TCSANOW, &waiting) != 0) return -1;
    int more = 0;
    char buffer[512];
    // Bounded: a terminal that never goes quiet ends the wait after about 4 MiB.
    for (int rounds = 0; rounds < 8192; rounds++) {
        ssize_t count = read(fd, buffer, sizeof buffer);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        for (ssize_t i = 0; i < count; i++) {
            if (buffer[i] != '\n' && buffer[i] != '\r') more++;
        }
    }
    // Through volatile stores: a memset of a buffer never read again is a dead store the optimiser
    // removed (a review found none in the release binary), leaving pasted secret bytes on the stack.
    volatile char *wipe = buffer;
    for (size_t i = 0; i < sizeof buffer; i++) wipe[i] = 0;
    kms_terminal_set(fd, TCSANOW, &current);
    return more;
}
