"""Score one k-nearest-neighbours model on scikit-learn's 8x8 digits.

A trial of `sweep-knn.yml`: the sweep passes n_neighbors, weights and p; the script logs the
held-out accuracy (the sweep's primary metric) with the Azure ML v1 run API, which tug
provides in every environment image.
"""
import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from azureml.core import Run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-neighbors", type=int, default=5)
    parser.add_argument("--weights", choices=["uniform", "distance"], default="uniform")
    parser.add_argument("--p", type=int, default=2)
    parser.add_argument("--test-size", type=float, default=0.25)
    args = parser.parse_args()

    run = Run.get_context()
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=args.test_size, random_state=42, stratify=digits.target
    )
    model = KNeighborsClassifier(n_neighbors=args.n_neighbors, weights=args.weights, p=args.p)
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    print(f"n_neighbors={args.n_neighbors} weights={args.weights} p={args.p}: accuracy {accuracy:.4f}")
    run.log("accuracy", accuracy)


if __name__ == "__main__":
    main()
