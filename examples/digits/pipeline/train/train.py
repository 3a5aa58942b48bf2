"""Fit logistic regression on the training folder and save the model."""
import argparse
import csv
import os
import pickle

import numpy as np
from sklearn.linear_model import LogisticRegression
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
    args = parser.parse_args()
    x, y = read(args.data)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(x, y)
    os.makedirs(args.model, exist_ok=True)
    with open(os.path.join(args.model, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    print(f"trained on {len(y)} images with C={args.C}")


if __name__ == "__main__":
    main()
