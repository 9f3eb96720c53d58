#include "CProcessHardening.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int kms_finish_stdout(void) {
    errno = 0;
    if (fflush(stdout) == 0 && ferror(stdout) == 0) return 0;
    return errno != 0 ? errno : EIO;
}

void kms_guard_standard_descriptors(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        // The lowest free number is this one, as 0 to fd - 1 are open by now.
        int placeholder = open("/dev/null", (fd == 0 ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
        if (placeholder >= 0 && placeholder != fd) {
            dup2(placeholder, fd);
            close(placeholder);
        }
    }
}
