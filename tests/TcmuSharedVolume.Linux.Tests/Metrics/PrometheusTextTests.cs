using TcmuSharedVolume.Diagnostics;

namespace TcmuSharedVolume.Tests.Metrics;

public sealed class PrometheusTextTests
{
    [Fact]
    public void WritesHelpTypeAndSamplesWithEscapedLabels()
    {
        var t = new PrometheusText()
            .Family("tsv_x_total", "counter", "Things\\counted\nhere.")
            .Sample("tsv_x_total", 42, ("volume", "a\"b\\c\nd"), ("path", "user_1/p"))
            .Sample("tsv_x_total", 0.25);

        Assert.Equal(
            "# HELP tsv_x_total Things\\\\counted\\nhere.\n" +
            "# TYPE tsv_x_total counter\n" +
            "tsv_x_total{volume=\"a\\\"b\\\\c\\nd\",path=\"user_1/p\"} 42\n" +
            "tsv_x_total 0.25\n",
            t.ToString());
    }

    [Theory]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(1e-5, "1E-05")]
    [InlineData(123456789012, "123456789012")]
    public void NumbersAreInvariantAndSpellInfinityAsTheFormatWants(double value, string text) =>
        Assert.Equal(text, PrometheusText.Number(value));

    [Fact]
    public void AFamilyTwiceOrABadNameOrTypeIsAProgrammingError()
    {
        var t = new PrometheusText().Family("a", "gauge", "h");
        Assert.Throws<InvalidOperationException>(() => t.Family("a", "gauge", "h"));
        Assert.Throws<ArgumentException>(() => t.Family("1a", "gauge", "h"));
        Assert.Throws<ArgumentException>(() => t.Family("a-b", "gauge", "h"));
        Assert.Throws<ArgumentException>(() => t.Family("b", "meter", "h"));
    }
}
