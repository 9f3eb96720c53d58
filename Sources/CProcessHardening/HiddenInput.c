#include "CProcessHardening.h"

#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

// Set by kms_hide_input before the echo goes off; read by the handler.
static struct termios kms_terminal_saved;
static volatile sig_atomic_t kms_terminal_fd = -1;
static const int kms_terminal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define KMS_TERMINAL_SIGNAL_COUNT (sizeof kms_terminal_signals / sizeof kms_terminal_signals[0])
static struct sigaction kms_terminal_previous[KMS_TERMINAL_SIGNAL_COUNT];

static void kms_terminal_handler(int signal_number) {
    // Async-signal-safe calls only.
    if (kms_terminal_fd >= 0) tcsetattr(kms_terminal_fd, TCSANOW, &kms_terminal_saved);
    ssize_t ignored = write(STDERR_FILENO, "\n", 1);
    (void)ignored;
    _exit(128 + signal_number);
}

int kms_hide_input(int fd) {
    if (kms_terminal_fd >= 0) return -1;
    if (tcgetattr(fd, &kms_terminal_saved) != 0) return -1;
    struct termios quiet = kms_terminal_saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    kms_terminal_fd = fd;
    // The handlers are in place before the echo goes off, so no signal finds the terminal silent
    // without them (a dispatch source is armed asynchronously: a Ctrl-C right after the prompt was
    // lost while the echo was off, and the command went on waiting for input).
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = kms_terminal_handler;
    sigfillset(&action.sa_mask);
    for (size_t i = 0; i < KMS_TERMINAL_SIGNAL_COUNT; i++) {
        sigaction(kms_terminal_signals[i], &action, &kms_terminal_previous[i]);
    }
    if (tcsetattr(fd, TCSANOW, &quiet) != 0) {
        kms_show_input();
        return -1;
    }
    return 0;
}

void kms_show_input(void) {
    if (kms_terminal_fd < 0) return;
    tcsetattr(kms_terminal_fd, TCSANOW, &kms_terminal_saved);
    for (size_t i = 0; i < KMS_TERMINAL_SIGNAL_COUNT; i++) {
        sigaction(kms_terminal_signals[i], &kms_terminal_previous[i], NULL);
    }
    kms_terminal_fd = -1;
}
