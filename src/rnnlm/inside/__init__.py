"""A wing: looking inside a language model (`python eval.py ... page=true`). Imports the book
only.

reading  a text read one token at a time: each token's surprisal, the top guesses, every unit's
         activation after it; the units most correlated with simple features of the text
page     those as one self-contained HTML page (`page.html`: its CSS and JavaScript, inline)
"""
