"""The online tier: a KServe V2 (Open Inference Protocol) model server on the batch's contract, features
and ONNX champion, its traffic sampled back into the lake (docs/online-serving.md)."""
