# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""What every trained network of galaxyml shares: its model card, its files, the shipped model.

A model is a Keras network plus a JSON *model card* beside it (same name,
``.json``) that records what the network needs to be rebuilt and used
(type, bands, stretch, hyperparameters) and how it was made (the training
command, data, wall time) and measured.  `SavedModel` writes and reads the
pair atomically and loads the models shipped with galaxyml;
`~galaxyml.gan.ImageToImageModel` (GalaxyGAN, PSFGAN) and
`~galaxyml.mergers.MergerClassifier` derive from it.
"""

import json
from importlib import resources
from pathlib import Path

import keras

from . import __version__
from .exceptions import InvalidParameterError, MissingFileError, ModelTypeError
from .io.writing import atomic_output

__all__ = ["SavedModel"]


class SavedModel:
    """Base class of galaxyml's trained networks: card, ``save``, ``load``, ``pretrained``.

    Subclasses set `model_type`, `card_arguments` (the constructor
    arguments the card keeps and `load` passes back), `pretrained_package`
    and `pretrained_file` (the shipped model, under ``<package>/data``),
    and keep their Keras network in the attribute named by
    `network_attribute`.  Extra card entries (``training``, ``metrics``)
    go in the ``card`` dict.
    """

    #: Name of the model type in the model card.
    model_type = None
    #: Constructor arguments that the card records and `load` passes back.
    card_arguments = ()
    #: Package whose ``data`` directory holds the shipped model.
    pretrained_package = None
    #: File name of the shipped model (None: nothing shipped).
    pretrained_file = None
    #: Attribute holding the Keras network that `save` writes.
    network_attribute = "network"

    @property
    def _network(self):
        return getattr(self, self.network_attribute)

    def _card_value(self, name):
        """A constructor argument as JSON (override for objects such as stretches)."""
        value = getattr(self, name)
        return list(value) if isinstance(value, tuple) else value

    @classmethod
    def _argument_from_card(cls, name, value):
        """The inverse of `_card_value`."""
        return value

    def model_card(self):
        """The JSON model card: type, version, parameters, constructor arguments, and ``card``."""
        card = {"model_type": self.model_type, "galaxyml_version": __version__,
                "parameters": int(self._network.count_params()),
                **{name: self._card_value(name) for name in self.card_arguments}}
        card.update({key: value for key, value in self.card.items() if key not in card})
        return card

    def save(self, path, overwrite=False):
        """Write the network (``.keras``) and its model card (same name, ``.json``), atomically."""
        path = Path(path)
        if path.suffix != ".keras":
            raise InvalidParameterError(f"the model file must end in .keras, not {path.name}")
        with atomic_output(path, overwrite=overwrite) as temporary:
            _without_optimizer(self._network).save(temporary)
        with atomic_output(path.with_suffix(".json"), overwrite=overwrite) as temporary:
            temporary.write_text(json.dumps(self.model_card(), indent=2) + "\n")
        return path

    @classmethod
    def read_card(cls, path):
        """The model card beside ``path``, checked to be of this model type.

        Raises
        ------
        ModelTypeError
            If the card is missing or names another model type.
        """
        path = Path(path)
        card_path = path.with_suffix(".json")
        if not card_path.is_file():
            raise ModelTypeError(f"{path}: no model card {card_path.name} beside it, so it is "
                                 f"not a galaxyml {cls.model_type} model")
        card = json.loads(card_path.read_text())
        if card.get("model_type") != cls.model_type:
            raise ModelTypeError(f"{path} is a {card.get('model_type')!r} model, not a "
                                 f"{cls.model_type}")
        return card

    @classmethod
    def update_card(cls, path, **entries):
        """Set entries of the model card beside ``path`` (for example ``metrics``), atomically."""
        card = cls.read_card(path)
        card.update(entries)
        with atomic_output(Path(path).with_suffix(".json"), overwrite=True) as temporary:
            temporary.write_text(json.dumps(card, indent=2) + "\n")

    @classmethod
    def load(cls, path):
        """A model written by `save`, with its card."""
        card = cls.read_card(path)
        model = cls(**{name: cls._argument_from_card(name, card[name])
                       for name in cls.card_arguments if name in card})
        setattr(model, cls.network_attribute, keras.saving.load_model(path, compile=False))
        model.card = card
        return model

    @classmethod
    def pretrained(cls):
        """The model of this type shipped with galaxyml, with its card."""
        if cls.pretrained_file is None:
            raise MissingFileError(f"galaxyml ships no {cls.model_type} model")
        path = resources.files(cls.pretrained_package) / "data" / cls.pretrained_file
        with resources.as_file(path) as local:
            if not Path(local).is_file():
                raise MissingFileError(f"the shipped model {cls.pretrained_file} is missing from "
                                       "this installation")
            return cls.load(local)


def _without_optimizer(network):
    """The network alone: a compiled model would carry its optimizer's slots (twice its
    weights for Adam) into the file, though resuming training is the checkpoints' job."""
    if getattr(network, "optimizer", None) is None:
        return network
    copy = type(network).from_config(network.get_config())  # not compiled, unlike clone_model
    copy.set_weights(network.get_weights())
    return copy
