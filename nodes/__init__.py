"""ComfyUI nodes of the pack: thin V3 adapters over models/, engine/ and report/.

This package is the only place that imports ComfyUI (comfy, comfy_api, folder_paths, server,
nodes), and it is imported only from ``comfy_entrypoint()``.
"""
