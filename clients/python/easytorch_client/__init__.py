"""easytorch_client: a PyTorch-flavoured Python client for easytorchd.

    import easytorch_client as et
    from easytorch_client import nn, optim

    client = et.Client("http://127.0.0.1:8080", token=None)
    model = client.create("sine",
                          layers=[nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1)],
                          loss=nn.MSELoss(), optimizer=optim.Adam(lr=0.01), seed=0)
    model.fit(x, y, epochs=200, batch_size=32)      # progress bar on stderr
    model.fit(x, y, epochs=200, validation=(xv, yv))  # as a daemon job (Ctrl-C cancels)
    for ev in model.events(types=["step"]): ...      # the live event stream
    y_hat = model.predict(x)
    model.save("sine.safetensors")

Daemon errors raise EasytorchError with ``.status`` and ``.message``.
"""

from .client import Client, Model, EasytorchError, encode_tensor, DEFAULT_URL
from ._jobs import Job, Event
from . import nn, optim

__all__ = ["Client", "Model", "EasytorchError", "encode_tensor", "DEFAULT_URL", "Job", "Event", "nn",
           "optim"]
__version__ = "0.1.0"
