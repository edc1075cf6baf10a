"""GetPasswordData's reading of a Windows guest's console."""

from karri.cloud.instances.password import password_data


def test_the_block_ec2config_writes_is_returned_as_written() -> None:
    console = b"boot...\r\n<Password>\r\nQUJD\r\nREVG\r\n</Password>\r\nmore\r\n"
    assert password_data(console) == "QUJDREVG"


def test_the_last_block_wins_and_none_is_empty() -> None:
    assert password_data(b"<Password>AAAA</Password> <Password>BBBB</Password>") == "BBBB"
    assert password_data(b"Debian GNU/Linux 12") == ""
    assert password_data(b"<Password>not base64!</Password>") == ""


def test_hostile_consoles_cost_a_linear_scan() -> None:
    # an unterminated block of whitespace, many times: no catastrophic backtracking
    assert password_data((b"<Password>" + b" " * 8000) * 200) == ""
