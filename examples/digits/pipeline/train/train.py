"""Fit logistic regression on the training folder and save the model."""
import argparse
import csv
import os
import pickle

import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def read(folder):
    with open(os.path.join(folder, "digits.csv")) as f:
        rows = list(csv.reader(f))[1:]
    data = np.array(rows, dtype=float)
    return data[:, 1:], data[:, 0].astype(int)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--model", required=True)
    parser.add_argument("--val-fraction", type=float, default=0.0)
    args = parser.parse_args()
    x, y = read(args.data)
    if args.val_fraction > 0:
        # Held out of the training folder (the test folder stays for `evaluate`): what a
        # sweep over C compares trials by.
        x, x_val, y, y_val = train_test_split(
            x, y, test_size=args.val_fraction, random_state=0, stratify=y
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(x, y)
    if args.val_fraction > 0:
        accuracy = float(model.score(x_val, y_val))
        mlflow.log_metric("val_accuracy", accuracy)
        print(f"validation accuracy {accuracy:.4f} on {len(y_val)} images")
    os.makedirs(args.model, exist_ok=True)
    with open(os.path.join(args.model, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    print(f"trained on {len(y)} images with C={args.C}")


if __name__ == "__main__":
    main()
