"""Answer texts for parser tests: each reference variant, cut-off answers, garbage and edge cases."""

T2I_FULL = """# User Request Analysis
The user wants a red cube on a wooden table, photographed.
# Detailed Judgement
1. Text Faithfulness:
## Justification: The cube is red and on a table, but the table looks like metal.
## Score: 2.5
2. Physical and Visual Quality:
## Justification: Lighting is coherent; slight blur at the edges.
## Score: 3.5
3. Text Rendering:
## Justification: No text is requested.
## Score: N/A
# Summary: A decent image that gets the material of the table wrong.

# User Request Refinement:
## Refinement Comments: State the wood grain explicitly.
## Refined Request: A photo of a red cube on a rustic wooden table with visible wood grain."""

EDIT_FULL = """# User Request Analysis
Make the sky purple, keep everything else.
# Detailed Judgement
1. Text Faithfulness:
## Justification: The sky is purple.
## Score: 4
2. Image Faithfulness:
## Justification: The house changed colour too.
## Score: 2.0
3. Physical and Visual Quality:
## Justification: Clean edges.
## Score: 3.0
4. Text Rendering:
## Justification: No text.
## Score: N/A
# Summary: Good edit with collateral changes.

# User Request Refinement:
## Refinement Comments: Say the house must keep its colour.
## Refined Request: Turn the sky purple and keep the house and everything else exactly as in the source."""

PAIR_T2I = """# User Request Analysis
A cat on a sofa.
# Detailed Judgement
1. Text Faithfulness:
## Justification: A shows the cat; B shows a dog.
## Score A: 3.5
## Score B: 1.5
## Winner: Image A
2. Physical and Visual Quality:
## Justification: Both are clean; B is sharper.
## Score A: 3.0
## Score B: 3.5
## Winner: Image B
3. Text Rendering:
## Justification: No text requested.
## Score A: N/A
## Score B: N/A
## Winner: N/A
# Summary: A follows the prompt; B does not."""

PAIR_EDIT = """# Detailed Judgement
1. Text Faithfulness:
## Justification: Both make the change.
## Score A: 3.0
## Score B: 3.0
## Winner: It's a tie
2. Image Faithfulness:
## Justification: B keeps the background.
## Score A: 2.0
## Score B: 3.5
## Winner: B
3. Physical and Visual Quality:
## Justification: Equal.
## Score A: 3.0
## Score B: 3.0
## Winner: Tie
4. Text Rendering:
## Justification: n/a
## Score A: N/A
## Score B: N/A
## Winner: N/A
# Summary: B is better."""
