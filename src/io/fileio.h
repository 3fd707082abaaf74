/* The library's file writes, in one place: every byte written to a file and
 * every fsync goes through here, where the write fault hook sits
 * (core/fault.h) and where short writes and EINTR are dealt with once. Files
 * written with stdio get a stream whose writes come here (bl_sink_open). Where
 * an output lands when its name is a symbolic link is decided here too
 * (bl_write_target). */
#ifndef BL_IO_FILEIO_H
#define BL_IO_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include "batchlab/error.h"

/* Writes all n bytes (looping over short writes and EINTR): 0, or -1 with errno. */
int bl_write_all(int fd, const void *buf, size_t n);
/* fsync(2): 0, or -1 with errno. */
int bl_fsync(int fd);

/* A write-only stdio stream over fd whose buffer is flushed through bl_write_all.
 * fclose closes fd (and frees the sink). NULL with errno (ENOMEM) when it cannot be
 * made; fd is then still open. *sink, when asked for, gives the owner the fd and the
 * first write error while the stream is open. */
typedef struct bl_sink bl_sink;
FILE *bl_sink_open(int fd, bl_sink **sink);
int bl_sink_fd(const bl_sink *s);
/* errno of the first failed write (stdio may have lost it by the time of fflush); 0 if none. */
int bl_sink_error(const bl_sink *s);

/* Where a write of path lands: path itself, or, when path is a symbolic link, the file it
 * points to (resolved through every level), as editors and cp write through links. A
 * dangling link or a loop is refused with BL_ERR_IO naming path; BL_ERR_ARG when the
 * result does not fit in cap bytes. */
bl_status bl_write_target(const char *path, char *out, size_t cap, bl_error *err);

#endif
