#!/usr/bin/python3
"""Differential test of easytorch's attention layers against PyTorch 1.13
(the cases are in nn_attention.py; the helpers are test_nn.py's).

Usage: /usr/bin/python3 test_attention.py PATH/TO/nn_runner

Prints one PASS/FAIL line per comparison and "N passed, M failed"; exits 1
on any failure."""
import os
import sys
import tempfile

import torch

import nn_attention
import test_nn as T


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    T.RUNNER = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="et_attention_") as d:
        T.TMP = d
        nn_attention.run(T)
    return T.summary()


if __name__ == "__main__":
    sys.exit(main())
