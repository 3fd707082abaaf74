/* Progress display. On a terminal the bar is redrawn at most 10 times a
 * second on stderr; otherwise (CI, pipes, files) a plain line every 5 s and
 * one per epoch, so logs stay readable. Loss/accuracy shown are exponential
 * moving averages of the training batches. */
#include "progress.h"
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include "batchlab/core.h"

void progress_init(progress *p, long total_steps, long steps_per_epoch, long first_step,
                   int quiet) {
    p->tty = isatty(2);
    p->quiet = quiet;
    p->t_start = p->t_last = bl_now_sec();
    p->total_steps = total_steps;
    p->steps_per_epoch = steps_per_epoch;
    p->first_step = first_step;
    p->have_ema = 0;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_clear(progress *p) {
    if (p->tty && !p->quiet) fprintf(stderr, "\r\033[K");
}

void progress_step(progress *p, const bl_step_info *s) {
    const double a = 0.05;
    if (!p->have_ema) {
        p->ema_loss = s->loss, p->ema_acc = s->acc, p->ema_rate = s->samples_per_s;
        p->have_ema = 1;
    } else {
        p->ema_loss += a * (s->loss - p->ema_loss);
        p->ema_acc += a * (s->acc - p->ema_acc);
        p->ema_rate += a * (s->samples_per_s - p->ema_rate);
    }
    if (p->quiet) return;
    double now = bl_now_sec();
    if (now - p->t_last < (p->tty ? 0.1 : 5.0) && !s->epoch_end) return;
    p->t_last = now;
    double elapsed = now - p->t_start;
    long done = s->step - p->first_step;
    char eta[32], el[32];
    fmt_time(el, sizeof el, elapsed);
    if (p->total_steps > 0 && done > 0)
        fmt_time(eta, sizeof eta, elapsed / done * (double)(p->total_steps - s->step));
    else
        fmt_time(eta, sizeof eta, -1);
    if (p->tty) {
        char bar[32];
        int width = 24, filled = 0;
        double frac = p->total_steps > 0 ? (double)s->step / p->total_steps : 0;
        if (frac > 1) frac = 1;
        filled = (int)(frac * width);
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr,
                "\r\033[Kepoch %ld [%s] %3.0f%% step %ld | loss %.4f acc %.3f | %.0f samples/s | "
                "%s elapsed, ETA %s",
                s->epoch + 1, bar, 100 * frac, s->step, p->ema_loss, p->ema_acc, p->ema_rate, el,
                eta);
        fflush(stderr);
    } else if (!s->epoch_end) {
        fprintf(
            stderr, "step %ld epoch %ld: loss %.4f acc %.3f %.0f samples/s lr %.4g (%s, ETA %s)\n",
            s->step, s->epoch + 1, p->ema_loss, p->ema_acc, p->ema_rate, (double)s->lr, el, eta);
    }
}

void progress_epoch(progress *p, const bl_epoch_info *e) {
    if (p->quiet) return;
    progress_clear(p);
    char el[32];
    fmt_time(el, sizeof el, e->elapsed_s);
    if (isnan(e->val_acc))
        fprintf(stderr, "epoch %ld done (step %ld): train loss %.4f acc %.4f [%s]\n", e->epoch + 1,
                e->step, e->train_loss, e->train_acc, el);
    else
        fprintf(stderr,
                "epoch %ld done (step %ld): train loss %.4f acc %.4f | val loss %.4f acc %.4f "
                "[%s]\n",
                e->epoch + 1, e->step, e->train_loss, e->train_acc, e->val_loss, e->val_acc, el);
}
