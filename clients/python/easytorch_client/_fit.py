"""Model.fit's loops: minibatches sent from the client over POST /train, or one
training job the daemon runs (POST .../jobs) followed over its event stream."""

import random
import sys

from ._progress import Progress


def client_loop(model, x, y, epochs, batch_size, shuffle, seed, verbose, rows_per_request, file):
    from .client import EasytorchError, _row_count, _take_rows, _slice_rows
    n = _row_count(x)
    if n != _row_count(y):
        raise ValueError("fit: x has %d rows but y has %d" % (n, _row_count(y)))
    if n == 0:
        raise ValueError("fit: no rows")
    if batch_size is None or batch_size <= 0 or batch_size > n:
        batch_size = n
    per_request = max(1, rows_per_request // batch_size) * batch_size
    rng = random.Random(seed)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    bar = Progress(epochs, steps_per_epoch, file or sys.stderr) if verbose else None
    history = {"loss": [], "step": None}
    step = None
    for epoch in range(epochs):
        order = list(range(n))
        if shuffle:
            rng.shuffle(order)
        total, count = 0.0, 0
        start = 0
        while start < n:
            idx = order[start:start + per_request]
            xb = _take_rows(x, idx) if shuffle else _slice_rows(x, start, start + per_request)
            yb = _take_rows(y, idx) if shuffle else _slice_rows(y, start, start + per_request)
            try:
                res = model.train(xb, yb, epochs=1, batch_size=batch_size, shuffle=False)
            except EasytorchError as e:
                # Over the daemon's body limit (nothing was trained): send
                # fewer minibatches per request from now on.
                if e.status == 413 and per_request > batch_size:
                    per_request = max(batch_size, (per_request // 2) // batch_size * batch_size)
                    continue
                raise
            losses = res.get("losses") or [res["loss"]]
            rows = len(idx)
            for i, l in enumerate(losses):
                size = min(batch_size, rows - i * batch_size)
                total += l * size
                count += size
            step = res["step"]
            start += rows
            if bar:
                bar.update(epoch + 1, (start + batch_size - 1) // batch_size, step, losses[-1])
        history["loss"].append(total / count if count else float("nan"))
        if bar:
            bar.end_epoch(epoch + 1, step, history["loss"][-1])
    if bar:
        bar.close()
    history["step"] = step
    return history


def job_fit(model, x, y, epochs, batch_size, shuffle, verbose, file, validation, eval_every,
            metrics, wait):
    """fit as one training job; see Model.fit."""
    from .client import EasytorchError, _row_count
    n = _row_count(x)
    if n != _row_count(y):
        raise ValueError("fit: x has %d rows but y has %d" % (n, _row_count(y)))
    if n == 0:
        raise ValueError("fit: no rows")
    if batch_size is None or batch_size <= 0 or batch_size > n:
        batch_size = n
    job = model.submit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                       validation=validation, eval_every=eval_every, metrics=metrics)
    if not wait:
        return job
    steps_per_epoch = (n + batch_size - 1) // batch_size
    bar = Progress(epochs, steps_per_epoch, file or sys.stderr) if verbose else None
    shown = [0]

    def progress(ev):
        if bar is None or ev.type != "job":
            return
        done, epoch = ev.data.get("steps_done") or 0, ev.data.get("epoch") or 1
        loss = ev.data.get("loss")
        loss = float("nan") if loss is None else loss
        start = job.record.get("start_step") or 0
        while shown[0] < min(epoch - 1, done // steps_per_epoch):
            shown[0] += 1
            bar.end_epoch(shown[0], start + shown[0] * steps_per_epoch, loss)
        bar.update(max(epoch, 1), done - (max(epoch, 1) - 1) * steps_per_epoch, start + done, loss)

    try:
        record = job.wait(progress)
        if bar and record["state"] == "done":
            loss = record.get("loss")
            loss = float("nan") if loss is None else loss
            while shown[0] < epochs:
                shown[0] += 1
                bar.end_epoch(shown[0], (record.get("start_step") or 0) + shown[0] * steps_per_epoch,
                              loss)
    finally:
        if bar:
            bar.close()
    if record["state"] != "done":
        raise EasytorchError(None, "job %d of %r ended %s: %s" % (
            job.id, model.name, record["state"], record.get("error")), "POST",
            model._path + "/jobs")
    # Per-epoch mean losses from the job's own history entries (row-weighted as a
    # client-side fit's: the last minibatch of an epoch may be smaller).
    start = record["start_step"] or 0
    hist = dict(model.loss_history(since=start))
    sizes = [batch_size] * (steps_per_epoch - 1) + [n - batch_size * (steps_per_epoch - 1)]
    means = []
    for e in range(epochs):
        total = count = 0.0
        for i, size in enumerate(sizes):
            loss = hist.get(start + e * steps_per_epoch + i + 1)
            if loss is not None:
                total += loss * size
                count += size
        means.append(total / count if count else float("nan"))
    full = job.status()
    return {"loss": means, "step": start + record["steps_done"],
            "validation": (full.get("validation") or {}).get("results", []), "job": full}
