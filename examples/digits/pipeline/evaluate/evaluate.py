"""Score the model on the test folder: write metrics.json and log accuracy."""
import argparse
import csv
import json
import os
import pickle

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from azureml.core import Run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.model, "model.pkl"), "rb") as f:
        model = pickle.load(f)
    with open(os.path.join(args.data, "digits.csv")) as f:
        data = np.array(list(csv.reader(f))[1:], dtype=float)
    predicted = model.predict(data[:, 1:])
    truth = data[:, 0].astype(int)
    metrics = {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_macro": float(f1_score(truth, predicted, average="macro")),
    }
    run = Run.get_context()
    for name, value in metrics.items():
        run.log(name, value)
    os.makedirs(args.metrics, exist_ok=True)
    with open(os.path.join(args.metrics, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"accuracy: {metrics['accuracy']:.4f}")


if __name__ == "__main__":
    main()
