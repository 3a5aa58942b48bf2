"""Scoring script for the digits model (Azure ML online endpoint contract).

init() runs once per worker and loads the registered model from $AZUREML_MODEL_DIR;
run() gets the request body as a string: {"data": [[64 pixel values 0..16], ...]} and
returns the predicted digits, with each one's probability.
"""
import json
import logging
import os
import pickle

import numpy as np

model = None


def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")
    with open(path, "rb") as f:
        model = pickle.load(f)
    logging.info("loaded %s", path)


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 64:
        raise ValueError(f"expected rows of 64 pixel values, got shape {rows.shape}")
    probabilities = model.predict_proba(rows)
    return {
        "predictions": model.classes_[probabilities.argmax(axis=1)].tolist(),
        "probabilities": probabilities.max(axis=1).round(4).tolist(),
    }
