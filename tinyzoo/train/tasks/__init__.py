"""The training recipes several examples share, as importable modules (they build on `tinyzoo.models`).

- `cora`: semi-supervised node classification on Cora (examples/gcn_cora.py, gat_cora.py);
- `image_classifiers`: MNIST / CIFAR-10 classifiers (examples/mlp_mnist.py, cnn_mnist.py, resnet_mnist.py,
  vit_mnist.py);
- `char_lm`: character language models on the Tiny-Shakespeare-like corpus (examples/char_lm.py,
  char_rnn_shakespeare.py, hyperlstm_shakespeare.py).
"""
