"""Builds planted.bin (a flat binary) from planted.S with the GNU assembler."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    obj = os.path.join(HERE, "planted.o")
    subprocess.run(["as", "--64", "-o", obj, os.path.join(HERE, "planted.S")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, os.path.join(HERE, "planted.bin")], check=True)
    os.remove(obj)


if __name__ == "__main__":
    main()
