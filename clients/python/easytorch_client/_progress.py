"""A small text progress bar for Model.fit (stderr, no dependencies)."""

import time


class Progress:
    """Shows ``epoch E/N [#####-----] step S loss L``.

    On a terminal the line is redrawn in place (at most ~10 times a second);
    into a file or pipe one line is written per epoch, at most one a second,
    plus the last epoch's, so logs stay short."""

    WIDTH = 24

    def __init__(self, epochs, steps_per_epoch, stream):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except Exception:
            self.tty = False
        self.last = 0.0
        self.start = time.monotonic()

    def _line(self, epoch, done_in_epoch, step, loss):
        total = self.epochs * self.steps_per_epoch
        done = (epoch - 1) * self.steps_per_epoch + done_in_epoch
        fill = int(self.WIDTH * done / total) if total else self.WIDTH
        bar = "#" * fill + "-" * (self.WIDTH - fill)
        width = len(str(self.epochs))
        return "epoch %*d/%d [%s] %3d%% step %d loss %.6g  %.1fs" % (
            width, epoch, self.epochs, bar, 100 * done // max(total, 1), step, loss,
            time.monotonic() - self.start)

    def update(self, epoch, done_in_epoch, step, loss):
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        self.stream.write("\r" + self._line(epoch, done_in_epoch, step, loss) + "\x1b[K")
        self.stream.flush()

    def end_epoch(self, epoch, step, loss):
        now = time.monotonic()
        if self.tty:
            if epoch == self.epochs or now - self.last >= 0.1:
                self.stream.write("\r" + self._line(epoch, self.steps_per_epoch, step, loss) + "\x1b[K")
                self.stream.flush()
                self.last = now
        elif epoch == self.epochs or epoch == 1 or now - self.last >= 1.0:
            self.stream.write(self._line(epoch, self.steps_per_epoch, step, loss) + "\n")
            self.stream.flush()
            self.last = now

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
