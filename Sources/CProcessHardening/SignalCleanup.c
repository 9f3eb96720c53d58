#include "CProcessHardening.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

// Written before any work that could fault starts; read only by the handler.
static char kms_fault_path[4096];
static struct sigaction kms_saved_bus;
static volatile sig_atomic_t kms_bus_installed;

static const char kms_fault_message[] =
    "Error: io_error: the input could not be read (SIGBUS: did another process shorten it while it was read?)\n";

static void kms_fault_handler(int signal_number) {
    (void)signal_number;
    // Async-signal-safe calls only.
    if (kms_fault_path[0] != '\0') unlink(kms_fault_path);
    ssize_t ignored = write(STDERR_FILENO, kms_fault_message, sizeof kms_fault_message - 1);
    (void)ignored;
    _exit(1);
}

int kms_remove_on_fault(const char *path) {
    if (strlen(path) >= sizeof kms_fault_path) return -1;
    strcpy(kms_fault_path, path);
    if (kms_bus_installed) return 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = kms_fault_handler;
    sigfillset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &kms_saved_bus) != 0) return -1;
    kms_bus_installed = 1;
    return 0;
}

void kms_keep_on_fault(void) {
    if (kms_bus_installed) sigaction(SIGBUS, &kms_saved_bus, NULL);
    kms_bus_installed = 0;
    kms_fault_path[0] = '\0';
}

int kms_signal_ignored(int signal_number) {
    struct sigaction current;
    if (sigaction(signal_number, NULL, &current) != 0) return 0;
    return current.sa_handler == SIG_IGN ? 1 : 0;
}

void kms_end_by_signal(int signal_number) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    if (sigaction(signal_number, &action, NULL) != 0) return;
    // The calling thread may block it (dispatch's threads block signals): unblocked, raise delivers
    // it before it returns.
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal_number);
    pthread_sigmask(SIG_UNBLOCK, &only, NULL);
    raise(signal_number);
}
