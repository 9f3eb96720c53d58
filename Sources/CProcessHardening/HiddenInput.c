#include "CProcessHardening.h"

#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

// Set by kms_hide_input before the echo goes off; read by the handler.
static struct termios kms_terminal_saved;
static struct termios kms_terminal_quiet;
static volatile sig_atomic_t kms_terminal_fd = -1;
static char kms_terminal_prompt[256];
static size_t kms_terminal_prompt_length;
static const int kms_terminal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
#define KMS_TERMINAL_SIGNAL_COUNT (sizeof kms_terminal_signals / sizeof kms_terminal_signals[0])
static struct sigaction kms_terminal_previous[KMS_TERMINAL_SIGNAL_COUNT];
static struct sigaction kms_terminal_action;

static int kms_terminal_is_stop(int signal_number) {
    return signal_number == SIGTSTP || signal_number == SIGTTIN || signal_number == SIGTTOU;
}

static void kms_terminal_handler(int signal_number) {
    // Async-signal-safe calls only. The terminal goes back as it was, and the signal then takes its
    // default action: the process dies of it (so a shell's loop stops at a Ctrl-C), or stops (Ctrl-Z).
    if (kms_terminal_fd >= 0) tcsetattr(kms_terminal_fd, TCSANOW, &kms_terminal_saved);
    ssize_t ignored = write(STDERR_FILENO, "\n", 1);
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal_number, &fallback, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal_number);
    raise(signal_number);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    if (!kms_terminal_is_stop(signal_number)) _exit(128 + signal_number);
    // Continued (`fg`): the echo goes off again, the handler comes back and the prompt is shown again,
    // as readpassphrase(3) does (a shell that restored its own settings at the stop would otherwise
    // show the rest of the secret).
    sigaction(signal_number, &kms_terminal_action, NULL);
    if (kms_terminal_fd >= 0) tcsetattr(kms_terminal_fd, TCSANOW, &kms_terminal_quiet);
    ignored = write(STDERR_FILENO, kms_terminal_prompt, kms_terminal_prompt_length);
    (void)ignored;
}

int kms_hide_input(int fd, const char *prompt) {
    if (kms_terminal_fd >= 0) return -1;
    if (tcgetattr(fd, &kms_terminal_saved) != 0) return -1;
    kms_terminal_quiet = kms_terminal_saved;
    kms_terminal_quiet.c_lflag &= ~(tcflag_t)ECHO;
    size_t length = strlen(prompt);
    if (length >= sizeof kms_terminal_prompt) length = sizeof kms_terminal_prompt - 1;
    memcpy(kms_terminal_prompt, prompt, length);
    kms_terminal_prompt_length = length;
    kms_terminal_fd = fd;
    // The handlers are in place before the echo goes off, so no signal finds the terminal silent
    // without them (a dispatch source is armed asynchronously). A signal ignored on entry (`trap ''
    // INT`) stays ignored.
    memset(&kms_terminal_action, 0, sizeof kms_terminal_action);
    kms_terminal_action.sa_handler = kms_terminal_handler;
    sigfillset(&kms_terminal_action.sa_mask);
    for (size_t i = 0; i < KMS_TERMINAL_SIGNAL_COUNT; i++) {
        sigaction(kms_terminal_signals[i], NULL, &kms_terminal_previous[i]);
        if (kms_terminal_previous[i].sa_handler == SIG_IGN) continue;
        sigaction(kms_terminal_signals[i], &kms_terminal_action, NULL);
    }
    if (tcsetattr(fd, TCSANOW, &kms_terminal_quiet) != 0) {
        kms_show_input();
        return -1;
    }
    ssize_t ignored = write(STDERR_FILENO, kms_terminal_prompt, kms_terminal_prompt_length);
    (void)ignored;
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
