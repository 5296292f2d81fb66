"""Models: demo architectures, training, checkpoints (safetensors + JSON) and converters.

Nothing is imported here, so the command line can load ``workbench.models._cli`` and
``workbench.models._convert`` without torch.
"""
