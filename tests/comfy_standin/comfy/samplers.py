class KSampler:
    SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m"]
    SCHEDULERS = ["normal", "karras", "simple"]
