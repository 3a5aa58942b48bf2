"""Split scikit-learn's 8x8 digits into train and test folders of CSV files."""
import argparse
import csv
import os

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def write(folder, x, y):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "digits.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label"] + [f"p{i}" for i in range(x.shape[1])])
        for label, row in zip(y, x):
            w.writerow([int(label)] + [int(v) for v in row])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    args = parser.parse_args()
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=args.test_size,
        random_state=args.seed, stratify=digits.target)
    write(args.train, x_train, y_train)
    write(args.test, x_test, y_test)
    print(f"wrote {len(y_train)} training and {len(y_test)} test images")


if __name__ == "__main__":
    main()
