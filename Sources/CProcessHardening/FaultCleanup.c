#include "CProcessHardening.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

// Written before any work that can fault starts, read only by the handler.
static char kms_fault_path[4096];
static const char kms_fault_message[] =
    "Error: io_error: the input could not be read (SIGBUS: did another process shorten it while it was read?); "
    "the partial output was removed\n";

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
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = kms_fault_handler;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, NULL);
}

void kms_keep_on_fault(void) {
    signal(SIGBUS, SIG_DFL);
    kms_fault_path[0] = '\0';
}
