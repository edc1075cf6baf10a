"""The cloud controller (CLC): accounts, keys, images, instances and the rules between them."""
