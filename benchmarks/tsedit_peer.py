"""The peer generators of benchmarks/tsedit.py, run inside their own virtual environment.

    .bench/tsgm-venv/bin/python benchmarks/tsedit_peer.py IN.npz OUT.npz --model timegan ...

Reads the training windows ``train`` (n, T, C) from IN.npz, trains one of tsgm's generators
used as its documentation shows (data min-max scaled per feature with
``tsgm.utils.TSFeatureWiseScaler``, Keras 3 on the TensorFlow backend, the model's default
architecture) and writes ``generated`` (n_out, T, C, data units), ``seconds`` (training time),
``model`` and ``epochs`` to OUT.npz. It imports nothing from SAFER: the benchmark hands it
arrays.

- ``timegan``: ``tsgm.models.timeGAN.TimeGAN`` (Yoon et al., 2019) with tsgm's defaults
  (GRU, hidden 24, 3 layers, batch 256), ``fit(data, epochs)`` (each of its three phases runs
  ``epochs`` iterations);
- ``vae``: ``tsgm.models.cvae.BetaVAE`` on tsgm's ``vae_conv5`` architecture (a convolutional
  VAE in the style of TimeVAE), ``fit(data, epochs, batch_size=256)``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inp")
    parser.add_argument("out")
    parser.add_argument("--model", choices=("timegan", "vae"), required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--n-out", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import logging

    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import tsgm

    logging.getLogger("models").setLevel(logging.WARNING)
    keras.utils.set_random_seed(args.seed)
    train = np.load(args.inp)["train"].astype("float32")
    n, seq_len, n_feat = train.shape
    scaler = tsgm.utils.TSFeatureWiseScaler((0, 1)).fit(train)
    scaled = scaler.transform(train).astype("float32")
    start = time.perf_counter()
    if args.model == "timegan":
        model = tsgm.models.timeGAN.TimeGAN(seq_len=seq_len, n_features=n_feat)
        model.compile()
        model.fit(scaled, epochs=args.epochs)
        seconds = time.perf_counter() - start
        out = np.asarray(model.generate(n_samples=args.n_out))
    else:
        arch = tsgm.models.zoo["vae_conv5"](seq_len=seq_len, feat_dim=n_feat, latent_dim=16)
        model = tsgm.models.cvae.BetaVAE(arch.encoder, arch.decoder)
        model.compile(optimizer=keras.optimizers.Adam())
        model.fit(scaled, epochs=args.epochs, batch_size=256, verbose=0)
        seconds = time.perf_counter() - start
        out = np.asarray(model.generate(args.n_out))
    generated = scaler.inverse_transform(out.astype("float64"))
    np.savez(args.out, generated=generated, seconds=seconds, model=args.model, epochs=args.epochs)


if __name__ == "__main__":
    main()
