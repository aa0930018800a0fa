"""Stand-in for comfy_api.latest._ui: PreviewText and PreviewImage (records instead of saving)."""


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self):
        return {"text": (self.value,)}


class PreviewImage(_UIOutput):
    def __init__(self, image, animated: bool = False, cls=None, **kwargs):
        self.image = image
        self.values = [{"filename": f"preview_{i}.png", "subfolder": "", "type": "temp"}
                       for i in range(int(image.shape[0]))]
        self.animated = animated

    def as_dict(self):
        return {"images": self.values, "animated": (self.animated,)}
