"""Published instruction wordings shared by datasets, readers and models."""

OVERVIEW = "<image>\nThis provides an overview of the picture.\n"
MGIMM_ATTRIBUTE_PROMPT = (
    "<image>\n Based on the provided region of the remote sensing image, describe the basic attributes of the main "
    "objects in that region."
)
MGIMM_DESCRIPTION_PROMPT = "<image>\nDescribe this remote sensing image in detail."
