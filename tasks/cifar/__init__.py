"""Support of the cifar10-class task family: the data set reader and the models."""
