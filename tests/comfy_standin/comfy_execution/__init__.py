"""Stand-in for comfy_execution (ComfyUI 0.3.64): graph_utils.GraphBuilder and graph.DynamicPrompt."""
