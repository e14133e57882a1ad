using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Replaces the object's data (truncating it to length).</summary>
    [LibraryImport(Library, EntryPoint = "rados_write_op_write_full")]
    public static partial void rados_write_op_write_full(nint writeOp, byte* buffer, nuint length);
}
