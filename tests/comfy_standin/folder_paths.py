"""Stand-in for folder_paths (0.3.64): the registry of model folders."""
import os
import tempfile

base_path = tempfile.mkdtemp(prefix="standin_comfy_")
models_dir = os.path.join(base_path, "models")
folder_names_and_paths = {"checkpoints": ([os.path.join(models_dir, "checkpoints")], {".safetensors"})}


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    if folder_name in folder_names_and_paths:
        paths, exts = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[folder_name][0][:]


def get_temp_directory() -> str:
    return os.path.join(base_path, "temp")


def get_output_directory() -> str:
    return os.path.join(base_path, "output")


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0):
    """Same return shape as ComfyUI: (full_output_folder, filename, counter, subfolder, filename_prefix)."""
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full = os.path.join(output_dir, subfolder)
    os.makedirs(full, exist_ok=True)
    counter = 1 + sum(1 for f in os.listdir(full) if f.startswith(filename + "_"))
    return full, filename, counter, subfolder, filename_prefix
